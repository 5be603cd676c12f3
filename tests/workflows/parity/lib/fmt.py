def fixed(value):
    """Three decimals, so both executors print the same text."""
    return f"{value:.3f}"
