"""The Homie 5 convention as a northbound adapter (`docs/homie.md`): the bridge is a
Homie root device, every board a child device, on a broker session of its own."""
