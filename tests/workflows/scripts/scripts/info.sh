#!/usr/bin/env bash
# Reads the arrays Snakemake's preamble declares.
{
    echo "rule ${snakemake[rule]}"
    echo "sample ${snakemake_wildcards[sample]}"
    echo "${snakemake_params[label]} $(($(wc -l < "${snakemake_input[table]}") - 1))"
    echo "words ${snakemake_params[words]}"
    echo "threads ${snakemake[threads]}"
    echo "mem_mb ${snakemake_resources[mem_mb]}"
    echo "greeting ${snakemake_config[greeting]}"
    echo "scriptdir $(basename "${snakemake[scriptdir]}")"
    echo "output $(basename "${snakemake_output[info]}") $(basename "${snakemake_output[0]}")"
} > "${snakemake_output[info]}"
echo "bash done" > "${snakemake_log[0]}"
