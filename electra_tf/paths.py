"""Where electra_tf finds the files it ships and keeps the data it builds.

The configs live once, in the checkout's top-level `configs/`; a wheel ships
that same folder as `electra_tf/configs` (setup.py maps it there). In a
checkout, data the commands build (the demo corpus) goes to `<checkout>/data`;
an installed package writes it under `~/.cache/electra_tf` instead of into
site-packages. `$ELECTRA_TF_HOME`, when set, overrides both.
"""

import importlib.resources
import os

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT_DIR = os.path.dirname(_PACKAGE_DIR)


def _in_checkout():
    # setup.py beside the package: a source tree (also under `pip install -e`).
    return os.path.exists(os.path.join(_CHECKOUT_DIR, "setup.py")) and os.path.isdir(
        os.path.join(_CHECKOUT_DIR, "configs"))


def config_dir():
    """The folder of `<size>.json` configs and `finetuning/tasks.json`."""
    shipped = importlib.resources.files("electra_tf") / "configs"
    if shipped.is_dir():
        return str(shipped)
    if _in_checkout():
        return os.path.join(_CHECKOUT_DIR, "configs")
    raise FileNotFoundError(f"electra_tf's configs are neither in the package ({shipped}) nor in a checkout "
                            f"({_CHECKOUT_DIR}/configs): reinstall electra_tf")


def data_home():
    """Where built data goes: `$ELECTRA_TF_HOME`, else `<checkout>/data` or `~/.cache/electra_tf`."""
    if os.environ.get("ELECTRA_TF_HOME"):
        return os.environ["ELECTRA_TF_HOME"]
    if _in_checkout():
        return os.path.join(_CHECKOUT_DIR, "data")
    return os.path.join(os.path.expanduser("~"), ".cache", "electra_tf")
