from device_service.config import Settings
from device_service.models import Base
from shared.migrations import run_env

run_env(Base.metadata, Settings().database_url)
