from helper import shout


rule extra:
    output:
        "out.txt",
    run:
        with open(output[0], "w") as fh:
            fh.write(shout("done"))
