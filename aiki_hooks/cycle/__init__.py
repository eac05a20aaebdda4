"""One refresh cycle and its schedule: the runner that absorbs probe failures, the engine that turns results into a snapshot, the refresher that repeats it, and the cache it publishes."""
