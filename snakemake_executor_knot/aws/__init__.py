"""Stage 3: AWS. ``clients`` builds every boto3 client; ``template``, ``stack`` and
``teardown`` own the shared CloudFormation stack; ``jobdef``, ``submit``, ``status`` and
``logs`` run the jobs. No command-line code lives here."""
