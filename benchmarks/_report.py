"""What every benchmark script writes: the machine and run description, and the JSON report."""
import json, platform, sys
from datetime import datetime, timezone
from pathlib import Path

import torch


def run_meta(**extra) -> dict:
    "Date (UTC), versions, machine and the command line, plus the script's own fields."
    return dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'), torch=torch.__version__,
                python=platform.python_version(), machine=platform.machine(), processor=platform.processor(),
                threads=torch.get_num_threads(), command=' '.join(sys.argv), **extra)


def write_report(path, meta: dict, results: list) -> None:
    "Write {meta, results} as indented JSON to `path` (folders created) and say where."
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(meta=meta, results=results), indent=2) + '\n')
    print('written', path)
