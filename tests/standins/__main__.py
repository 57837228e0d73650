"""Serve one stand-in by hand: `PYTHONPATH=tests python -m standins twilio --port 4010`.

It prints the credentials it accepts on stdout as env-file lines named after the sample hooks'
secrets (`> twilio.env` keeps them for `hookengine push --secrets twilio.env`); everything
else, the request log included, goes to stderr.
"""

import argparse
import sys

from werkzeug.serving import run_simple

from standins import infobip, twilio, vonage

PROVIDERS = {"twilio": twilio, "vonage": vonage, "infobip": infobip}

parser = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("provider", choices=sorted(PROVIDERS))
parser.add_argument("--port", type=int, default=4010)
args = parser.parse_args()
module = PROVIDERS[args.provider]
print("".join(f"{name}={value}\n" for name, value in module.ENV.items()), end="", flush=True)
print(f"{args.provider} stand-in on http://127.0.0.1:{args.port}; it accepts the credentials "
      "printed on stdout", file=sys.stderr, flush=True)
run_simple("127.0.0.1", args.port, module.create_app(), threaded=True)
