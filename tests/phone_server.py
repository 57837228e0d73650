"""`hookengine` with a phone configuration: the CLI, its engines given the DeliveryConfig in
PHONE_TEST_CONFIG (JSON), until the configuration stores feed config_from themselves."""

from __future__ import annotations

import json
import os

from hookengine import engine as engine_module
from hookengine.cli import main
from hookengine.phone.delivery import DeliveryConfig

config = DeliveryConfig(**json.loads(os.environ["PHONE_TEST_CONFIG"]))
built = engine_module.Engine.__init__


def with_phone_config(self, *args, **kwargs):
    built(self, *args, **kwargs)
    self.phone_config = config


engine_module.Engine.__init__ = with_phone_config

if __name__ == "__main__":
    main(prog_name="hookengine")
