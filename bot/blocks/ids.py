"""Action and callback ids: the contract between the blocks and the listeners."""


class Actions:
    FINETUNE_WITH_FILE = "finetune_with_file"
    USE_AS_VALIDATION = "use_as_validation_file"
    REFRESH_JOB = "refresh_job"
    CANCEL_JOB = "cancel_job"
    DOWNLOAD_CHECKPOINT = "download_checkpoint"
    START_AGAIN = "start_job_again"


class Views:
    CREATE_JOB = "create_job"
