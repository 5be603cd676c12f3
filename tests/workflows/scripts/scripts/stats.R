# Reads the S4 object Snakemake's preamble defines.
d <- read.csv(snakemake@input[["table"]])
lines <- c(
    paste("rule", snakemake@rule),
    paste("sample", snakemake@wildcards[["sample"]]),
    paste(snakemake@params[["label"]], mean(d$y) * snakemake@params[["scale"]]),
    paste("threads", snakemake@threads),
    paste("mem_mb", snakemake@resources[["mem_mb"]]),
    paste("greeting", snakemake@config[["greeting"]]),
    paste("scriptdir", basename(snakemake@scriptdir)),
    paste("output", basename(snakemake@output[["summary"]]), basename(snakemake@output[[1]]))
)
writeLines(lines, snakemake@output[["summary"]])
cat("R done\n", file = snakemake@log[[1]])
