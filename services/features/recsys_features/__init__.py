"""Stream features: the Faust job that turns member events into real-time features."""
