def scale() -> int:
    # Read without being declared: the workflow's files are in the job's working directory.
    with open("conf/scale.txt") as handle:
        return int(handle.read())
