"""vla_ros: a vision-language-action model node for ROS 2 (camera frames + command -> Trajectory)."""

# The generated message code (vla_ros.msg and the vla_ros_s__rosidl_typesupport_* modules) can live
# in another sys.path entry than this file: in the venv it is in site-packages/vla_ros, while this
# code is installed editable from the checkout. extend_path adds every `vla_ros` folder on sys.path to
# this package's __path__ so both halves import as one package. Keep this file light (no torch).
__path__ = __import__('pkgutil').extend_path(__path__, __name__)

__version__ = "0.1.0"
