"""rosbag2 tools: record simulated episodes, replay bags into the node (or offline), score, golden outputs.

Modules:

* ``schema`` (types, topics, QoS, message conversions; rosbags' type store with
  vla_ros/msg/Trajectory), ``io`` (BagReader with damage handling, BagWriter), ``salvage``
  (reading truncated MCAP files), ``record`` (``vla bag record-sim``);
* replay: ``topics`` (which topic plays which part), ``batches`` (the bag as observations, fed to
  a NodeCore), ``session`` (answers, the output bag, the report), ``offline`` (NodeCore in this
  process), ``dds`` (the ``vla_node`` subprocess and this process's DDS player), ``dds_replay``
  (timed and stepped replay through the node);
* scoring: ``score`` (ADE/FDE, stops, latency; report table), ``score_bag`` (answers and ground
  truth read from bags), ``golden`` (golden outputs of the tiny fixture).

Every replay reads the bag the same way (:func:`batches.iter_batches`): the messages of the chosen
topics, in bag (log) time order, grouped by equal log time; after each observation the node's
inputs are checked and (when usable) the model runs.  Frame selection is the node's own:
:class:`vla_ros.runtime.core.NodeCore` (histories keyed on ``header.stamp``, ``history_length``
frames ``history_spacing`` apart, ego/top paired by stamp).

The command line is ``vla bag`` (``vla_ros.commands.bag``); the user documentation is
``docs/bags.md``.  Nothing here imports rclpy except the DDS replay (``dds.DdsPlayer``, used by
``dds_replay.replay_dds``).
"""
