"""``vla info``: the seed's "Model Size Reduction" table for the configured head, and more."""

from __future__ import annotations

from typing import Any

from vla_ros.config import ModelConfig, seed_before_config

MB = 2**20  # the seed's "MB" is bytes / 2^20


def head_sizes(cfg: ModelConfig) -> dict[str, Any]:
    from vla_ros.model.head import DiffusionActionHead

    counts = DiffusionActionHead(cfg).parameter_counts()
    return {
        "unet_params": counts["unet"],
        "head_params": counts["total"],
        "unet_mb": counts["unet"] * 4 / MB,
        "head_mb": counts["total"] * 4 / MB,
    }


def collect(cfg: ModelConfig, with_model: bool = True) -> dict[str, Any]:
    before_cfg = seed_before_config()
    after, before = head_sizes(cfg), head_sizes(before_cfg)
    rows = []
    for key, label in (("unet_params", "UNet Parameters"), ("head_params", "Total Parameters"),
                       ("unet_mb", "UNet Memory (float32)"), ("head_mb", "Total Memory (float32)")):
        b, a = before[key], after[key]
        rows.append({"component": label, "before": b, "after": a, "reduction_pct": 100.0 * (1 - a / b)})
    info: dict[str, Any] = {
        "size_table": rows,
        "before": {"num_timesteps": before_cfg.num_timesteps, "num_inference_steps": 1000,
                   "scheduler": "DDPM", "unet_channels": list(before_cfg.unet_channels),
                   "attention_head_dim": before_cfg.attention_head_dim},
        "after": {"num_timesteps": cfg.num_timesteps, "num_inference_steps": cfg.num_inference_steps,
                  "scheduler": "DDIM" if cfg.use_ddim else "DDPM", "unet_channels": list(cfg.unet_channels),
                  "attention_head_dim": cfg.attention_head_dim,
                  "cross_attention_dim": cfg.cross_attention_dim},
    }
    if with_model:
        from vla_ros.model.vla import SimpleVLA

        model = SimpleVLA(cfg)
        info["model"] = {**model.parameter_summary(), "backbone": cfg.backbone,
                         "condition_tokens": model.num_tokens, "cond_dim": cfg.cond_dim,
                         "lora": {"enabled": cfg.use_lora, "r": cfg.lora_r, "alpha": cfg.lora_alpha},
                         "trajectory_length": cfg.trajectory_length, "history_length": cfg.history_length}
    return info


def format_table(info: dict[str, Any]) -> str:
    def fmt(label: str, v: float) -> str:
        return f"{v:,.2f} MB" if "Memory" in label else f"{int(v):,}"

    lines = ["Model Size Reduction (diffusion action head)", "",
             f"| {'Component':<24} | {'Before':>12} | {'After':>12} | {'Reduction':>10} |",
             f"|{'-' * 26}|{'-' * 14}|{'-' * 14}|{'-' * 12}|"]
    for r in info["size_table"]:
        lines.append(f"| {r['component']:<24} | {fmt(r['component'], r['before']):>12} | "
                     f"{fmt(r['component'], r['after']):>12} | {r['reduction_pct']:>9.1f}% |")
    b, a = info["before"], info["after"]
    lines += ["", f"| {'Setting':<24} | {'Before':>12} | {'After':>12} |", f"|{'-' * 26}|{'-' * 14}|{'-' * 14}|",
              f"| {'Training Timesteps':<24} | {b['num_timesteps']:>12} | {a['num_timesteps']:>12} |",
              f"| {'Inference Steps':<24} | {b['num_inference_steps']:>12} | {a['num_inference_steps']:>12} |",
              f"| {'Scheduler':<24} | {b['scheduler']:>12} | {a['scheduler']:>12} |",
              f"| {'UNet Channels':<24} | {str(tuple(b['unet_channels'])):>12} | {str(tuple(a['unet_channels'])):>12} |",
              f"| {'Attention Head Dim':<24} | {b['attention_head_dim']:>12} | {a['attention_head_dim']:>12} |"]
    if "model" in info:
        m = info["model"]
        lines += ["", f"Whole SimpleVLA ({m['backbone']} backbone, LoRA r={m['lora']['r']} "
                      f"alpha={m['lora']['alpha']}{'' if m['lora']['enabled'] else ' (disabled)'}):",
                  f"  parameters  {m['total']:>12,}", f"  trainable   {m['trainable']:>12,}",
                  f"  frozen      {m['frozen']:>12,}",
                  f"  condition   {m['condition_tokens']} tokens x {m['cond_dim']}",
                  f"  trajectory  {m['trajectory_length']} waypoints x (x, y, heading); "
                  f"history {m['history_length']} frames per camera"]
    return "\n".join(lines)
