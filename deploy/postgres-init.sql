-- One database per service (docker-compose's PostgreSQL runs this once, on first start).
CREATE DATABASE opencap_session;
CREATE DATABASE opencap_device;
CREATE DATABASE opencap_upload;
CREATE DATABASE opencap_results;
