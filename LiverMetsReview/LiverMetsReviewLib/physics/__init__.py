"""Physics shared by the phantom (forward model) and the maps (inverse): signal equations and the fat spectrum.

``signal``: relaxation, spoiled GRE, spin echo, diffusion; ``fat``: multi-peak fat spectrum, fat phasor, in/opposed
echo times and two-point fat fraction expectations. Pure numpy; neither ``phantom`` nor ``maps`` is imported here.
"""
