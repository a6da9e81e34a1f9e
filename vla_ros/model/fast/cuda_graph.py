"""The whole DDIM loop as one CUDA graph: every UNet call and update replayed with one launch."""

from __future__ import annotations

import torch

from vla_ros.model.fast.ddim import DDIMSampler

__all__ = ["CudaGraphSampler"]


class CudaGraphSampler:
    """One CUDA graph over the whole DDIM loop, for one (batch, tokens) shape."""

    def __init__(self, sampler: DDIMSampler, context: torch.Tensor, noise: torch.Tensor) -> None:
        self.sampler = sampler
        self.static_context = context.clone()
        self.static_noise = noise.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up kernels / allocator outside the graph
            for _ in range(2):
                sampler(self.static_context, self.static_noise)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = sampler(self.static_context, self.static_noise)

    def __call__(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        self.static_context.copy_(context)
        self.static_noise.copy_(noise)
        self.graph.replay()
        return self.static_out.clone()
