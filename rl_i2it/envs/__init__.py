"""Batched, device-resident environments, one file per task family."""
from .registration import RegistrationEnv

__all__ = ["RegistrationEnv"]
