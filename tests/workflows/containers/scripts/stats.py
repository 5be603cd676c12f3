import platform


def main(smk) -> None:
    with open(smk.input[0]) as handle:
        lines = handle.read().splitlines()
    with open(smk.output[0], "w") as out:
        out.write(f"{len(lines)} lines, python {platform.python_version_tuple()[0]}\n")


main(snakemake)  # noqa: F821 - Snakemake injects `snakemake` into scripts
