"""setuptools build of vla_ros for the venv (scripts/setup.sh installs it editable).

ROS tooling (colcon, a ROS install) builds this package through CMakeLists.txt instead
(package.xml says build_type ament_cmake); that path also generates the messages.
"""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'vla_ros'


def share_files(folder):
    """data_files entries for every file below `folder`, keeping sub-folders (like ament_python)."""
    by_dir = {}
    for path in sorted(glob(os.path.join(folder, '**', '*'), recursive=True)):
        if os.path.isfile(path) and '__pycache__' not in path:
            target = os.path.join('share', package_name, os.path.dirname(path))
            by_dir.setdefault(target, []).append(path)
    return sorted(by_dir.items())


setup(
    name=package_name,
    version='0.1.0',
    description='Vision-language-action model node for ROS 2',
    license='Apache-2.0',
    maintainer='VLA ROS maintainers',
    maintainer_email='vla-ros@example.com',
    python_requires='>=3.10',
    # package_dir {'': '.'} makes `pip install -e .` (setuptools' default editable mode) write a
    # plain .pth pointing at the checkout instead of an import hook. The hook would lose against the
    # generated half of vla_ros in site-packages (see vla_ros/__init__.py); the .pth does not.
    package_dir={'': '.'},
    packages=find_packages(include=['vla_ros', 'vla_ros.*']),
    # Runtime dependencies are pinned in requirements.txt (installed by scripts/setup.sh).
    install_requires=[],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        *share_files('launch'),
        *share_files('config'),
        *share_files('checkpoints'),
    ],
    zip_safe=False,
    entry_points={
        'console_scripts': [
            'vla = vla_ros.cli:main',
            'vla_node = vla_ros.ros.vla_node:main',
            'sim_node = vla_ros.ros.sim_node:main',
            'trajectory_follower = vla_ros.ros.trajectory_follower:main',
        ],
    },
)
