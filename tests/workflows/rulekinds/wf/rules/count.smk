# Rules in their own file, with scripts beside the rules' folder: the usual layout.


rule count:
    input:
        "results/table.txt",
    output:
        "results/count.txt",
    script:
        "../scripts/count.py"
