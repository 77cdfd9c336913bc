"""How it is simulated: one contract (base.Engine), several implementations."""
