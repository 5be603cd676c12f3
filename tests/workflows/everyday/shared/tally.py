"""A helper module next to an included file, outside the main Snakefile's folder."""


def line_count(path):
    with open(path) as fh:
        return sum(1 for _ in fh)


def shout(text):
    return text.upper() + "!"
