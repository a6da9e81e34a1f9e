"""Two cameras in numpy: an ego pinhole camera on the robot and a fixed overhead camera.

* :class:`~vla_ros.sim.texture.GroundTexture` bakes the ground of one layout (grass, road, edge
  lines, dashed centre line, object shadows) into an RGB texture once per episode.
* :class:`EgoCamera` renders the ground with a per-pixel ray/ground intersection that is
  precomputed in the robot frame (the camera is rigid on the robot and the ground is flat,
  so each frame is one 2D rotation + a texture gather), paints the sky above the horizon,
  and draws cones / barrels / boxes as upright 3D polygons in painter's order.
* :class:`TopCamera` renders an orthographic north-up view of the whole arena with the
  robot as a white arrow-head (nose = heading).

Both render at ``config.supersample`` times the resolution and average (anti-aliasing).
:func:`world_to_top_pixel` and :func:`robot_to_ego_pixel` map points into the images, e.g.
to draw trajectories over them.
"""

from __future__ import annotations

import math

import numpy as np

from .config import WorldConfig
from .geometry import robot_to_world
from .layout import Cone, Layout, Obstacle
from .raster import HAZE, OUTLINE, ROBOT, SKY_HORIZON, SKY_TOP, downsample, fill_convex
from .texture import GroundTexture

__all__ = [
    "EgoCamera",
    "TopCamera",
    "world_to_top_pixel",
    "top_pixel_to_world",
    "robot_to_ego_pixel",
    "trajectory_to_top_pixels",
]

# ---------------------------------------------------------------------------------------------
# ego camera
# ---------------------------------------------------------------------------------------------


class EgoCamera:
    """Forward-looking pinhole camera at ``(ego_forward, 0, ego_height)`` in the robot frame,
    pitched down by ``ego_pitch_deg`` with ``ego_fov_deg`` field of view.

    The camera has no roll, so the ground is every row below the horizon: per frame the
    precomputed robot-frame ground points of those rows are rotated/translated into texture
    indices (preallocated buffers, no large temporaries) and gathered from the packed texture.
    """

    NEAR = 0.05
    MAX_DEPTH = 50.0  # ground farther ahead than this is drawn as haze

    def __init__(self, config: WorldConfig):
        self.config = config
        ss = config.supersample
        self.ss = ss
        S = config.image_size * ss
        self.S = S
        self.f = config.ego_focal * ss
        self.c = S / 2.0
        p = math.radians(config.ego_pitch_deg)
        self.cp, self.sp = math.cos(p), math.sin(p)
        self.h = config.ego_height
        self.fwd = config.ego_forward
        self.half_fov = math.radians(config.ego_fov_deg) / 2
        coords = (np.arange(S) + 0.5 - self.c) / self.f
        xc, yc = np.meshgrid(coords, coords)  # xc right, yc down
        # ray in the robot frame (x fwd, y left, z up): xc * right + yc * down + forward
        rx = self.cp - yc * self.sp
        ry = -xc
        rz = -self.sp - yc * self.cp
        rows_down = rz[:, 0] < -1e-9
        depth = np.where(rows_down, self.h * rx[:, 0] / np.where(rows_down, -rz[:, 0], 1.0), np.inf)
        ground_rows = np.flatnonzero(rows_down & (depth < self.MAX_DEPTH))
        r0 = int(ground_rows[0]) if len(ground_rows) else S
        self.r0 = r0
        t = self.h / -rz[r0:]
        self.gx = (self.fwd + t * rx[r0:]).ravel().astype(np.float32)  # robot-frame ground points
        self.gy = (t * ry[r0:]).ravel().astype(np.float32)
        dist = (t * np.sqrt(rx[r0:] ** 2 + ry[r0:] ** 2 + rz[r0:] ** 2)).ravel()
        w = np.clip((dist - 8.0) / 40.0, 0.0, 0.8)
        self.haze_n = int(np.flatnonzero(w > 0).max()) + 1 if np.any(w > 0) else 0  # leading pixels
        self.haze_w = w[: self.haze_n, None].astype(np.float32)
        # sky: gradient toward the horizon; below the horizon but beyond MAX_DEPTH: haze
        sin_up = rz / np.sqrt(rx ** 2 + ry ** 2 + rz ** 2)
        up = np.clip(sin_up, 0.0, 1.0) ** 0.6  # 0 at the horizon, 1 straight up
        sky = SKY_HORIZON[None, None] * (1 - up[..., None]) + SKY_TOP[None, None] * up[..., None]
        sky[sin_up < 0] = HAZE
        sky4 = np.full((S, S, 4), 255, np.uint8)
        sky4[..., :3] = sky.clip(0, 255)
        self.sky = sky4.view(np.uint32).reshape(-1)
        # rows whose pixels are smaller than a texel (magnified ground near the robot) are
        # sampled bilinearly (no staircase edges); the rest take the nearest texel
        row_depth = depth[r0:]
        footprint = row_depth ** 2 / (self.h * self.f)  # metres of ground per pixel row
        near_rows = np.flatnonzero(footprint < 0.05)  # GroundTexture's default res
        self.near_start = (int(near_rows[0]) if len(near_rows) else S - r0) * S  # index into the ground pixels
        # preallocated per-frame buffers
        m = len(self.gx)
        self._fx = np.empty(m, np.float32)
        self._fy = np.empty(m, np.float32)
        self._tmp = np.empty(m, np.float32)
        self._ix = np.empty(m, np.int32)
        self._iy = np.empty(m, np.int32)
        self._img = np.empty(S * S, np.uint32)
        mb = max(m - self.near_start, 0)
        self._bl = {name: np.empty(mb, np.float32) for name in ("u", "v")}
        self._bl.update({name: np.empty(mb, np.float32) for name in ("wu", "wv")})
        self._bl.update({name: np.empty(mb, np.int32) for name in ("x0", "y0", "i00", "tmpi")})
        self._bl["p"] = np.empty(mb, np.uint32)
        self._bl.update({name: np.empty((3, mb), np.float32) for name in ("t00", "t01", "t10", "t11")})

    def _ground(self, x: float, y: float, yaw: float, texture: GroundTexture) -> np.ndarray:
        """Sky + ground into the internal buffer; returns it as (S, S, 4) uint8."""
        fx, fy = self._texture_coords(x, y, yaw, texture)
        n = texture.n
        ix, iy = self._ix, self._iy
        np.copyto(ix, fx, casting="unsafe")
        np.copyto(iy, fy, casting="unsafe")
        iy *= n + 2
        iy += ix
        img = self._img
        img[: self.r0 * self.S] = self.sky[: self.r0 * self.S]
        ground = img[self.r0 * self.S:]
        np.take(texture.packed, iy, out=ground)
        if self.near_start < len(ground):
            self._bilinear_near(ground, fx, fy, texture)
        if self.haze_n:
            hz = ground[: self.haze_n].view(np.uint8).reshape(-1, 4)
            f = hz[:, :3].astype(np.float32)
            f += (HAZE[None, :] - f) * self.haze_w
            hz[:, :3] = f
        return img.view(np.uint8).reshape(self.S, self.S, 4)

    def _texture_coords(self, x: float, y: float, yaw: float, texture: GroundTexture) -> tuple[np.ndarray, np.ndarray]:
        """Fractional texture (column, row) of every ground pixel for the robot at (x, y, yaw),
        clipped to the texture's grass border (in the preallocated buffers)."""
        c, s = math.cos(yaw), math.sin(yaw)
        k = 1.0 / texture.res
        e = texture.extent
        n = texture.n
        fx, fy, tmp = self._fx, self._fy, self._tmp
        # texture column = (x + c gx - s gy + e) / res + 1 ; row = (e - y - s gx - c gy) / res + 1
        np.multiply(self.gx, np.float32(c * k), out=fx)
        np.multiply(self.gy, np.float32(-s * k), out=tmp)
        fx += tmp
        fx += np.float32((x + e) * k + 1)
        np.multiply(self.gx, np.float32(-s * k), out=fy)
        np.multiply(self.gy, np.float32(-c * k), out=tmp)
        fy += tmp
        fy += np.float32((e - y) * k + 1)
        np.clip(fx, 0, n + 1, out=fx)
        np.clip(fy, 0, n + 1, out=fy)
        return fx, fy

    def _bilinear_near(self, ground: np.ndarray, fx: np.ndarray, fy: np.ndarray, texture: GroundTexture) -> None:
        """Re-sample the ground pixels from ``near_start`` on (magnified ground) bilinearly, in place."""
        q = self.near_start
        n = texture.n
        # bilinear: texel (a, b) has its centre at fx = b + 0.5, fy = a + 0.5
        B = self._bl
        u, v, wu, wv, x0, y0, i00, tmpi = B["u"], B["v"], B["wu"], B["wv"], B["x0"], B["y0"], B["i00"], B["tmpi"]
        np.subtract(fx[q:], np.float32(0.5), out=u)
        np.subtract(fy[q:], np.float32(0.5), out=v)
        np.clip(u, 0, n, out=u)
        np.clip(v, 0, n, out=v)
        np.copyto(x0, u, casting="unsafe")
        np.copyto(y0, v, casting="unsafe")
        np.subtract(u, x0, out=wu)
        np.subtract(v, y0, out=wv)
        np.multiply(y0, n + 2, out=i00)
        i00 += x0
        pk = texture.packed
        taps = []
        for off, name in ((0, "t00"), (1, "t01"), (n + 2, "t10"), (n + 3, "t11")):
            np.add(i00, off, out=tmpi)
            np.take(pk, tmpi, out=B["p"])
            t = B[name]
            np.copyto(t, B["p"].view(np.uint8).reshape(-1, 4)[:, :3].T, casting="unsafe")  # planar
            taps.append(t)
        t00, t01, t10, t11 = taps
        t01 -= t00
        t01 *= wu
        t00 += t01
        t11 -= t10
        t11 *= wu
        t10 += t11
        t10 -= t00
        t10 *= wv
        t00 += t10
        t00 += np.float32(0.5)
        np.copyto(ground[q:].view(np.uint8).reshape(-1, 4)[:, :3].T, t00, casting="unsafe")

    # -- projection helpers ----------------------------------------------------------------
    def _to_camera(self, pts_robot: np.ndarray) -> np.ndarray:
        """Robot-frame 3D points (K, 3) -> camera coordinates (K, 3): right, down, forward."""
        rx = pts_robot[:, 0] - self.fwd
        ry = pts_robot[:, 1]
        rz = pts_robot[:, 2] - self.h
        return np.stack([-ry, -self.sp * rx - self.cp * rz, self.cp * rx - self.sp * rz], 1)

    def _clip_near(self, cam: np.ndarray) -> np.ndarray:
        z = cam[:, 2]
        if np.all(z >= self.NEAR):
            return cam
        if np.all(z < self.NEAR):
            return cam[:0]
        out = []
        k = len(cam)
        for i in range(k):
            a, b = cam[i], cam[(i + 1) % k]
            ina, inb = a[2] >= self.NEAR, b[2] >= self.NEAR
            if ina:
                out.append(a)
            if ina != inb:
                t = (self.NEAR - a[2]) / (b[2] - a[2])
                out.append(a + t * (b - a))
        return np.array(out) if out else cam[:0]

    def _poly(self, img, pts_robot, colour) -> None:
        cam = self._clip_near(self._to_camera(pts_robot))
        if len(cam) < 3:
            return
        uv = self.c + self.f * cam[:, :2] / cam[:, 2:3]
        fill_convex(img, uv, colour)

    # -- objects -------------------------------------------------------------------------------
    def _draw_cone(self, img, cone: Cone, rel: np.ndarray) -> None:
        cam = np.array([self.fwd, 0.0])
        d = rel - cam
        dist = max(float(np.hypot(*d)), 1e-6)
        perp = np.array([-d[1], d[0]]) / dist  # left, seen from the camera
        r, h = cone.radius, cone.height
        col = np.asarray(cone.rgb, np.float32)

        def p3(along: float, z: float) -> list:
            q = rel + along * perp
            return [q[0], q[1], z]

        apex = p3(0, h)
        self._poly(img, np.array([p3(r, 0), p3(0, 0), apex]), col * 1.0)
        self._poly(img, np.array([p3(0, 0), p3(-r, 0), apex]), col * 0.72)
        z1, z2 = 0.42 * h, 0.62 * h
        w1, w2 = r * (1 - z1 / h), r * (1 - z2 / h)
        self._poly(img, np.array([p3(w1, z1), p3(0, z1), p3(0, z2), p3(w2, z2)]), (245, 245, 245))
        self._poly(img, np.array([p3(0, z1), p3(-w1, z1), p3(-w2, z2), p3(0, z2)]), (190, 190, 190))

    def _draw_barrel(self, img, ob: Obstacle, rel: np.ndarray) -> None:
        cam = np.array([self.fwd, 0.0])
        d = rel - cam
        dist = max(float(np.hypot(*d)), 1e-6)
        perp = np.array([-d[1], d[0]]) / dist
        r, h = ob.size, ob.height
        col = np.asarray(ob.rgb, np.float32)
        edges = [1.0, 0.55, 0.0, -0.55, -1.0]
        shades = [0.75, 0.95, 1.05, 0.85]
        for k in range(4):
            a, b = rel + edges[k] * r * perp, rel + edges[k + 1] * r * perp
            self._poly(img, np.array([[a[0], a[1], 0], [b[0], b[1], 0], [b[0], b[1], h], [a[0], a[1], h]]),
                       col * shades[k])
        for zb in (0.3 * h, 0.68 * h):  # dark hoops
            a, b = rel + r * perp, rel - r * perp
            self._poly(img, np.array([[a[0], a[1], zb], [b[0], b[1], zb], [b[0], b[1], zb + 0.05],
                                      [a[0], a[1], zb + 0.05]]), col * 0.5)
        if self.h > h:  # lid visible from above
            ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            lid = np.stack([rel[0] + r * np.cos(ang), rel[1] + r * np.sin(ang), np.full(16, h)], 1)
            self._poly(img, lid, col * 1.2)

    def _draw_box(self, img, ob: Obstacle, rel: np.ndarray, rel_yaw: float) -> None:
        a, h = ob.size, ob.height
        c, s = math.cos(rel_yaw), math.sin(rel_yaw)
        loc = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float64) * a
        corners = np.stack([rel[0] + c * loc[:, 0] - s * loc[:, 1], rel[1] + s * loc[:, 0] + c * loc[:, 1]], 1)
        col = np.asarray(ob.rgb, np.float32)
        camxy = np.array([self.fwd, 0.0])
        light = np.array([0.6, 0.8])
        for k in range(4):
            p0, p1 = corners[k], corners[(k + 1) % 4]
            e = p1 - p0
            n = np.array([e[1], -e[0]]) / (np.hypot(*e) + 1e-12)  # outward (corners are CCW)
            if np.dot(n, camxy - 0.5 * (p0 + p1)) <= 0:
                continue
            shade = 0.62 + 0.38 * abs(float(np.dot(n, light)))
            self._poly(img, np.array([[p0[0], p0[1], 0], [p1[0], p1[1], 0], [p1[0], p1[1], h],
                                      [p0[0], p0[1], h]]), col * shade)
        if self.h > h:
            self._poly(img, np.concatenate([corners, np.full((4, 1), h)], 1), col * 1.15)

    # -- render ----------------------------------------------------------------------------------
    def render(self, state, layout: Layout, texture: GroundTexture) -> np.ndarray:
        """RGB uint8 (H, W, 3) seen from robot ``state`` = [x, y, yaw, ...]."""
        x, y, yaw = float(state[0]), float(state[1]), float(state[2])
        img = self._ground(x, y, yaw, texture)
        c, s = math.cos(yaw), math.sin(yaw)
        # objects, far to near (painter's algorithm)
        items = []
        for ob in list(layout.cones) + list(layout.obstacles):
            dx, dy = ob.x - x, ob.y - y
            rel = np.array([c * dx + s * dy, -s * dx + c * dy])
            size = ob.radius if isinstance(ob, Cone) else ob.bounding_radius
            fwd_d = rel[0] - self.fwd
            dist = math.hypot(fwd_d, rel[1])
            if fwd_d < -size or dist > self.MAX_DEPTH:
                continue
            # clearly outside the horizontal field of view
            if dist > size and abs(math.atan2(rel[1], fwd_d)) > self.half_fov + math.asin(min(size / dist, 1.0)) + 0.02:
                continue
            items.append((dist, ob, rel))
        items.sort(key=lambda it: -it[0])
        for _, ob, rel in items:
            if isinstance(ob, Cone):
                self._draw_cone(img, ob, rel)
            elif ob.shape == "barrel":
                self._draw_barrel(img, ob, rel)
            else:
                self._draw_box(img, ob, rel, ob.yaw - yaw)
        return downsample(img, self.ss)


def robot_to_ego_pixel(points, config: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    """Project robot-frame points ``(N, 2)`` (on the ground) or ``(N, 3)`` (x, y, z) into the ego
    image. Returns ``(uv, valid)``: ``uv`` (N, 2) as (column, row) with pixel centres at integers
    (matplotlib ``imshow`` convention) and ``valid`` (N,) True where the point is in front of the
    camera and inside the image."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1] == 2:
        pts = np.concatenate([pts, np.zeros(pts.shape[:-1] + (1,))], -1)
    p = math.radians(config.ego_pitch_deg)
    cp, sp = math.cos(p), math.sin(p)
    rx = pts[:, 0] - config.ego_forward
    ry = pts[:, 1]
    rz = pts[:, 2] - config.ego_height
    xc, yc, zc = -ry, -sp * rx - cp * rz, cp * rx - sp * rz
    f = config.ego_focal
    c = config.image_size / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        u = c + f * xc / zc - 0.5
        v = c + f * yc / zc - 0.5
    n = config.image_size
    valid = (zc > 0.05) & (u >= -0.5) & (u <= n - 0.5) & (v >= -0.5) & (v <= n - 0.5)
    return np.stack([u, v], -1), valid


# ---------------------------------------------------------------------------------------------
# top camera
# ---------------------------------------------------------------------------------------------


def world_to_top_pixel(xy, config: WorldConfig) -> np.ndarray:
    """World points ``(..., 2)`` -> top-camera pixel coordinates ``(..., 2)`` as (column, row),
    pixel centres at integers (plot them directly over ``imshow(top)``). The top camera is
    north-up and covers the arena ``[-arena_size/2, arena_size/2]^2``."""
    xy = np.asarray(xy, dtype=np.float64)
    half = config.arena_size / 2
    ppm = config.image_size / config.arena_size  # pixels per metre
    u = (xy[..., 0] + half) * ppm - 0.5
    v = (half - xy[..., 1]) * ppm - 0.5
    return np.stack([u, v], -1)


def top_pixel_to_world(uv, config: WorldConfig) -> np.ndarray:
    """Inverse of :func:`world_to_top_pixel`."""
    uv = np.asarray(uv, dtype=np.float64)
    half = config.arena_size / 2
    mpp = config.arena_size / config.image_size
    return np.stack([(uv[..., 0] + 0.5) * mpp - half, half - (uv[..., 1] + 0.5) * mpp], -1)


def trajectory_to_top_pixels(traj, state, config: WorldConfig) -> np.ndarray:
    """Robot-frame trajectory ``(N, 2|3)`` of a robot at world ``state`` -> top pixels ``(N, 2)``."""
    return world_to_top_pixel(robot_to_world(np.asarray(traj)[..., :2], state), config)


class TopCamera:
    """Fixed orthographic overhead camera over the arena (north up)."""

    def __init__(self, config: WorldConfig):
        self.config = config
        self.ss = config.supersample
        self.S = config.image_size * self.ss
        self.ppm = self.S / config.arena_size
        self.half = config.arena_size / 2
        self._bg = None
        self._bg_key = None

    def _pix(self, xy) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack([(xy[..., 0] + self.half) * self.ppm, (self.half - xy[..., 1]) * self.ppm], -1)

    def _circle(self, img, cx, cy, r, colour, k: int = 16) -> None:
        ang = np.linspace(0, 2 * np.pi, k, endpoint=False)
        fill_convex(img, self._pix(np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1)), colour)

    def background(self, layout: Layout, texture: GroundTexture) -> np.ndarray:
        key = (id(layout), id(texture))
        if self._bg_key == key:
            return self._bg
        centres = (np.arange(self.S) + 0.5) / self.ppm
        wx, wy = np.meshgrid(-self.half + centres, self.half - centres)
        img = texture.lookup(wx.ravel(), wy.ravel()).reshape(self.S, self.S, 3)
        for ob in layout.obstacles:
            col = np.asarray(ob.rgb, np.float32)
            if ob.shape == "box":
                cor = ob.corners()
                fill_convex(img, self._pix(cor), OUTLINE)
                inner = ob.xy + (cor - ob.xy) * max(0.0, 1 - 0.6 / (self.ppm * ob.size))
                fill_convex(img, self._pix(inner), col * 1.1)
            else:
                self._circle(img, ob.x, ob.y, ob.size, OUTLINE)
                self._circle(img, ob.x, ob.y, max(ob.size - 0.6 / self.ppm, 0.01), col * 1.1)
        for cone in layout.cones:
            r = max(cone.radius * 1.2, 1.6 / self.ppm * 1.0)
            self._circle(img, cone.x, cone.y, r + 0.6 / self.ppm, OUTLINE)
            self._circle(img, cone.x, cone.y, r, cone.rgb)
        self._bg, self._bg_key = img, key
        return img

    def robot_polygons(self, state, grow: float = 0.0) -> list[np.ndarray]:
        """World corners of the robot's arrow-head (two convex halves of a chevron whose nose is
        on the heading), each ``(3, 2)``; ``grow`` (m) enlarges it (for the outline)."""
        L, B, W, N = 0.5 + grow, 0.32 + grow, 0.26 + grow, 0.1  # nose, back, half width, notch depth
        nose, left, right, notch = [L, 0.0], [-B, W], [-B, -W], [-B + N + 0.5 * grow, 0.0]
        return [robot_to_world(np.array([nose, left, notch]), state),
                robot_to_world(np.array([nose, notch, right]), state)]

    def render(self, state, layout: Layout, texture: GroundTexture) -> np.ndarray:
        bg = self.background(layout, texture)
        if getattr(self, "_buf", None) is None or self._buf.shape != bg.shape:
            self._buf = np.empty_like(bg)
        img = self._buf
        np.copyto(img, bg)
        for poly in self.robot_polygons(state, grow=1.5 / self.ppm):
            fill_convex(img, self._pix(poly), OUTLINE)
        for poly in self.robot_polygons(state):
            fill_convex(img, self._pix(poly), ROBOT)
        return downsample(img, self.ss)
