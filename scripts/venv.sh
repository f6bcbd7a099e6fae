# Sourced by the other scripts: creates the virtualenv in $venv (default .venv) once.
venv=${VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
fi
venv=$(cd "$venv" && pwd)
