"""The ground of one layout (grass, road, edge lines, dashed centre line, object shadows) baked into a
texture once per episode; both cameras look it up."""

from __future__ import annotations

import math

import numpy as np

from .config import WorldConfig
from .layout import Cone, Layout
from .raster import CENTRE, EDGE, GRASS, ROAD, bilinear

__all__ = ["GroundTexture"]


# ---------------------------------------------------------------------------------------------
# ground texture
# ---------------------------------------------------------------------------------------------


class GroundTexture:
    """The ground of one layout baked into an RGB texture (north-up, ``res`` metres per texel).

    Covers ``[-extent, extent]^2``; lookups outside land on a grass-coloured border.
    ``image`` is (n+2, n+2, 3) uint8; ``packed`` the same as one uint32 RGBA word per texel.
    """

    def __init__(self, layout: Layout, config: WorldConfig, res: float = 0.05, margin: float = 4.0):
        self.res = res
        self.extent = config.arena_size / 2 + margin
        n = int(math.ceil(2 * self.extent / res))
        self.n = n
        rng = np.random.default_rng(layout.texture_seed)
        lane = layout.lane
        # signed lateral offset and arc length on a coarse grid, then bilinear up-sampling
        cres = 0.2
        idx = lane.index_grid(self.extent, cres)  # coarse grid, row 0 = north edge (cached on the lane)
        nc = idx.shape[0]
        cx, cy = np.meshgrid(-self.extent + np.arange(nc) * cres, self.extent - np.arange(nc) * cres)
        tan = lane.tangents[idx]
        rel_x = cx - lane.points[idx, 0]
        rel_y = cy - lane.points[idx, 1]
        lat = tan[..., 0] * rel_y - tan[..., 1] * rel_x  # signed lateral offset
        ends = (idx == 0) | (idx == len(lane.points) - 1)
        lat = np.where(ends, np.sign(lat + 1e-12) * np.hypot(rel_x, rel_y), lat)
        arc = lane.s[idx]
        # texel (i, j) centre: x = -extent + (j + .5) res, y = extent - (i + .5) res
        f = (np.arange(n) + 0.5) * res / cres
        ad = np.abs(bilinear(lat, f, f)).astype(np.float32)
        s = bilinear(arc, f, f).astype(np.float32)
        hw = lane.half_width

        # grass: low-frequency blotches + fine noise
        blot = rng.normal(0, 1, size=(int(2 * self.extent / 0.6) + 2,) * 2)
        bf = (np.arange(n) + 0.5) * res / (2 * self.extent / (blot.shape[0] - 1))
        noise = (14.0 * bilinear(blot, bf, bf)).astype(np.float32)
        noise += rng.normal(0, 5.0, size=(n, n)).astype(np.float32)
        tex = np.empty((n, n, 3), np.float32)
        for ch, gain in enumerate((0.8, 1.0, 0.6)):
            tex[..., ch] = GRASS[ch] + gain * noise
        road = ad <= hw
        tex[road] = ROAD[None, :] + 0.3 * noise[road][:, None]
        tex[(ad >= hw - 0.11) & (ad <= hw - 0.03)] = EDGE
        tex[(ad <= 0.045) & (np.mod(s, 1.2) < 0.6)] = CENTRE
        # soft shadows under the objects
        gx = -self.extent + (np.arange(n) + 0.5) * res
        gy = self.extent - (np.arange(n) + 0.5) * res
        for obj in list(layout.cones) + list(layout.obstacles):
            rad = (obj.radius if isinstance(obj, Cone) else obj.bounding_radius) * 1.25 + 0.05
            j0, j1 = np.searchsorted(gx, [obj.x - rad, obj.x + rad])
            i0, i1 = np.searchsorted(-gy, [-(obj.y + rad), -(obj.y - rad)])
            if j0 >= j1 or i0 >= i1:
                continue
            rr = np.hypot(gx[None, j0:j1] - obj.x, gy[i0:i1, None] - obj.y) / rad
            tex[i0:i1, j0:j1] *= np.clip(0.45 + 0.55 * rr ** 2, 0.45, 1.0)[..., None].astype(np.float32)
        # one texel of plain grass around it so clipped lookups fall on grass
        padded = np.empty((n + 2, n + 2, 4), np.uint8)
        padded[..., :3] = GRASS.astype(np.uint8)
        padded[..., 3] = 255
        np.clip(tex, 0, 255, out=tex)
        padded[1:-1, 1:-1, :3] = tex
        self.image = padded[..., :3]  # (n+2, n+2, 3); row 0 = north
        self.packed = padded.view(np.uint32).reshape(-1)  # one RGBA word per texel

    def lookup(self, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
        """Colours (N, 3) uint8 at world points (nearest texel)."""
        n = self.n
        ix = ((np.asarray(wx) + self.extent) * (1.0 / self.res)).astype(np.int64) + 1
        iy = ((self.extent - np.asarray(wy)) * (1.0 / self.res)).astype(np.int64) + 1
        np.clip(ix, 0, n + 1, out=ix)
        np.clip(iy, 0, n + 1, out=iy)
        return self.packed.take(iy * (n + 2) + ix).view(np.uint8).reshape(-1, 4)[:, :3]
