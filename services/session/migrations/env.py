from session_service.config import Settings
from session_service.models import Base
from shared.migrations import run_env

run_env(Base.metadata, Settings().database_url)
