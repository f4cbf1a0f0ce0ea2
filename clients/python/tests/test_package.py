#!/usr/bin/env python3
"""`pip install clients/python` works on a clean machine, offline: in a fresh virtual
environment (Debian keeps pip out of the system's Python), with no index to reach."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(HERE)


class Install(unittest.TestCase):
    def test_pip_install_offline_then_import(self):
        with tempfile.TemporaryDirectory(prefix="rv-venv-") as venv:
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            py = os.path.join(venv, "bin", "python")
            env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
            # As the README says, from the repository's root.
            r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q",
                                "clients/python"], cwd=os.path.dirname(os.path.dirname(PACKAGE)),
                               env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = subprocess.run([py, "-c", "import os, rendezvous, rendezvous.client; "
                                "print(rendezvous.__version__, rendezvous.__file__, "
                                "os.path.exists(os.path.join(os.path.dirname("
                                "rendezvous.__file__), 'py.typed')))"],
                               cwd=venv, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            version, path, typed = r.stdout.split()
            self.assertEqual(version, "0.1.0")
            self.assertTrue(path.startswith(venv), path)  # the installed copy
            self.assertEqual(typed, "True")


if __name__ == "__main__":
    unittest.main(verbosity=2)
