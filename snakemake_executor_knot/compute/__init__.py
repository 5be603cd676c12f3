"""How big a job is and where it runs: Batch sizes from threads and resources, the
compute class that holds them, the largest instance a class may launch, and the image
platform of its instance types."""
