# Included from ../workflow/Snakefile: a folder outside the Snakefile's, with a module
# (tally.py) that Snakemake puts on sys.path along with it.
from tally import line_count, shout


rule extra:
    input:
        "results/from_absolute.txt",
    output:
        "results/extra.txt",
    run:
        with open(output[0], "w") as out:
            out.write(shout(f"{line_count(input[0])} lines") + "\n")
