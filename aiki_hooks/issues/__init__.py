"""Issues over time: the journal of transitions, flap damping, recurring patterns, and the history the `issues` command shows."""
