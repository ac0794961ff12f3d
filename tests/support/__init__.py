"""Helpers shared by the test suite (and the bench scripts): the MQTT broker, MQTT
clients, a bridge run in-process, the command rig and an HA discovery schema checker.

``tests/`` is on ``sys.path`` (``pythonpath`` in ``pyproject.toml``; ``tests/conftest.py``
adds it too), so import the modules directly, e.g. ``from support.broker import Broker``:

* :mod:`support.net` - MQTT URLs, free ports, waiting for a port (no pytest, no client);
* :mod:`support.broker` - ``find_mosquitto``, ``MosquittoProcess`` and ``Broker``, what
  the ``broker`` fixture returns;
* :mod:`support.mqtt_client` - one-shot clients: ``publish``, ``publish_properties``,
  ``retained_snapshot``;
* :mod:`support.recorder` - ``Recorder``, a subscriber that records and waits for
  messages, and ``Received``;
* :mod:`support.harness` - a real bridge run against the test broker: ``make_settings``,
  ``running_bridge``, ``wait_until``, ``pty_board_at``, ``spawn_cli``;
* :mod:`support.rig` - ``rig``/``Rig``: a board on a pty, a bridge and a recorder, for the
  command tests;
* :mod:`support.ha_schema` - ``validate_discovery``/``validate_message``: Home Assistant's
  MQTT discovery schema.

This file imports nothing, so importing one module does not pull in the others.
"""
