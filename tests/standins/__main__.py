"""Serve one stand-in by hand: `cd tests && python -m standins twilio --port 4010`."""

import argparse

from werkzeug.serving import run_simple

from standins import infobip, twilio, vonage

PROVIDERS = {"twilio": twilio, "vonage": vonage, "infobip": infobip}

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("provider", choices=sorted(PROVIDERS))
parser.add_argument("--port", type=int, default=4010)
args = parser.parse_args()
module = PROVIDERS[args.provider]
credentials = {name: getattr(module, name) for name in dir(module) if name.startswith("TEST_")}
print(f"{args.provider} stand-in on http://127.0.0.1:{args.port}; test credentials: "
      f"{credentials}", flush=True)
run_simple("127.0.0.1", args.port, module.create_app(), threaded=True)
