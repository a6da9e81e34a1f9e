"""The fast sampling path of the action head: the same function as the plain path, less overhead.

* :mod:`~vla_ros.model.fast.ddim`: :class:`DDIMSampler`, the DDIM (eta 0) loop as fixed tensor
  operations; the plain path (:meth:`DiffusionActionHead.sample`) runs the same loop with
  diffusers' UNet calls.
* :mod:`~vla_ros.model.fast.unet`: :class:`FastUNet`, the head's UNet as a lean function with the
  step-only and context-only work hoisted out of the loop.
* :mod:`~vla_ros.model.fast.cpu_graph`: frozen TorchScript graphs of the CPU stages.
* :mod:`~vla_ros.model.fast.cuda_graph`: the whole DDIM loop captured as one CUDA graph.
* :mod:`~vla_ros.model.fast.threads`: small CPU batches on one thread.

:class:`vla_ros.inference.VLAInferenceAPI` puts these together.
"""
