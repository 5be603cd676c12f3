"""AWS on one machine: moto in server mode with knot's fidelity patches (``patches``) and a
local registry standing in for ECR (``registry``), run by ``server``. ``state`` reads the
running emulator's state file without loading moto."""
