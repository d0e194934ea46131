from shared.migrations import run_env
from upload_service.config import Settings
from upload_service.models import Base

run_env(Base.metadata, Settings().database_url)
