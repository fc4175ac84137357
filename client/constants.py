"""Every timeout, retry and polling constant of the client, in one place."""

DEFAULT_BASE_URL = "https://api.tokenfactory.nebius.com/v1/"

# Connect fast, but let large uploads and slow list calls take their time.
DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
# A chat answer comes whole only once it is generated: a long answer on a busy server (the local
# engine on a laptop CPU, a batch of compare prompts) takes minutes, and a retry after a read
# timeout only doubles the work.
CHAT_TIMEOUT_S = 600.0

# Retries for 429, 5xx and connection failures: exponential backoff with jitter, bounded.
DEFAULT_MAX_RETRIES = 4
RETRY_BASE_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 30.0
# A Retry-After larger than this is capped: a caller would rather see the error than hang.
RETRY_AFTER_CAP_S = 120.0

# Waiting for an uploaded file to be processed.
FILE_WAIT_TIMEOUT_S = 600.0
FILE_POLL_INITIAL_S = 1.0
FILE_POLL_FACTOR = 1.5
FILE_POLL_MAX_S = 15.0
JITTER_FRACTION = 0.2

# After a create-job call failed in a way that may have created the job, a job created this
# many seconds before the attempt still counts as "ours" (clock skew between us and Nebius).
CREATE_DEDUPE_SKEW_S = 120.0
CREATE_DEDUPE_SCAN_LIMIT = 50

# Streaming uploads.
UPLOAD_CHUNK_BYTES = 1024 * 1024

DEFAULT_EVENTS_PAGE = 100
DEFAULT_JOBS_PAGE = 20

# Waiting for a deployment (a LoRA checkpoint made a serverless model) to become active.
DEPLOY_WAIT_TIMEOUT_S = 900.0
DEPLOY_POLL_INITIAL_S = 2.0
DEPLOY_POLL_FACTOR = 1.5
DEPLOY_POLL_MAX_S = 20.0
# After a deploy call failed in a way that may have created the deployment, one created this
# many seconds before the attempt still counts as "ours" (clock skew, as for jobs).
DEPLOY_DEDUPE_SKEW_S = 120.0
