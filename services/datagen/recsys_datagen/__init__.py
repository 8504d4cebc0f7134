"""Data for the platform: the synthetic world, the traffic simulator and real-data importers."""
