"""What a closed-loop run (``vla sim``, ``vla demo``) decides, and the model checkpoint it drives with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vla_ros import paths
from vla_ros.errors import UserError

__all__ = ["SimOptions", "missing_checkpoint_message", "resolve_checkpoint"]


@dataclass
class SimOptions:
    """Everything ``vla sim`` / ``vla demo`` decide (CLI flags map onto these)."""

    episodes: int = 8
    seed: int = 0
    seeds: list[int] = field(default_factory=list)  # one per episode (overrides seed + i)
    kinds: str = ""  # comma-separated, '' = all, cycled
    command: str = ""
    split: str = "train"
    checkpoint: str = ""
    device: str = "cpu"
    image_size: int = 128
    duration: float = 8.0
    warmup: float = 0.8
    real_time: bool = False
    real_time_factor: float = 1.0
    rate_hz: float | None = None  # vla_node ticks per second (default: 20 in lockstep, the params file's otherwise)
    num_inference_steps: int = 0
    num_samples: int = 1  # diffusion samples averaged per tick (vla_node's num_samples)
    noise: str = "fixed"  # vla_node's noise: one of vla_ros.config.NOISE_MODES
    guidance: str = "none"  # vla_node's guidance: one of vla_ros.config.GUIDANCE_MODES
    guidance_settings: str = ""  # its overrides, "name=value,..." (vla_ros.guidance.parse_settings)
    scan_guard: bool = False  # vla_node's scan_guard: cut plans at what the simulated laser sees
    odometry: bool = True  # vla_node's use_odometry (the robot's measured velocity for the model)
    cpu_threads: int = 1  # torch threads of the model (0 = torch's default: one per core)
    params_file: str | None = None
    namespace: str = ""
    domain_id: int | None = None
    trajectory_timeout: float = 1.0
    tracker_horizon: float = 0.6  # sim_node's tracker_horizon (s of plan in the feed-forward)
    lockstep_timeout: float = 60.0
    startup_timeout: float = 300.0
    out_dir: str | None = None  # episode records and node logs ('' / None = a temporary folder)
    robot_input: str = "cmd_vel"  # sim_node's control_input: cmd_vel (trajectory_follower drives) | trajectory
    no_ros: bool = False


def missing_checkpoint_message(path: Path) -> str:
    return (f"no trained model at {path}. Create the default checkpoint first (about an hour on 2 CPU cores):\n"
            f"  vla data generate --out data/train --episodes 400 --seed 0\n"
            f"  vla train --data data/train --out runs/main\n"
            f"  mkdir -p {path.parent} && cp runs/main/best.pth {path}\n"
            f"or pass --checkpoint /path/to/model.pth")


def resolve_checkpoint(checkpoint: str | None) -> Path:
    """The checkpoint a run uses ('' / None = the packaged default); UserError when it is not there."""
    path = Path(checkpoint).expanduser() if checkpoint else paths.default_checkpoint()
    if not path.is_file():
        if checkpoint:
            raise UserError(f"checkpoint {path} does not exist")
        raise UserError(missing_checkpoint_message(path))
    return path
