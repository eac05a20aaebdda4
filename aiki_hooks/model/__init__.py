"""What the project's parts agree on: statuses and their order, results, issues and snapshots, threshold judgement. Pure: no I/O."""
