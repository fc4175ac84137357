"""Action and callback ids: the contract between the blocks and the listeners."""


class Actions:
    FINETUNE_WITH_FILE = "finetune_with_file"
    USE_AS_VALIDATION = "use_as_validation_file"
    REFRESH_JOB = "refresh_job"
    CANCEL_JOB = "cancel_job"
    DOWNLOAD_CHECKPOINT = "download_checkpoint"
    START_AGAIN = "start_job_again"
    # A succeeded LoRA job's checkpoint as a custom model, asking it, and deleting it.
    DEPLOY_CHECKPOINT = "deploy_checkpoint"
    TRY_MODEL = "try_model"
    UNDEPLOY_MODEL = "undeploy_model"
    # The Home tab's: a link to a job's thread (acknowledged only), and Cancel, Deploy and
    # Try it, done as the card's buttons are, in the job's thread.
    HOME_OPEN_THREAD = "home_open_thread"
    HOME_CANCEL_JOB = "home_cancel_job"
    HOME_DEPLOY = "home_deploy_checkpoint"
    HOME_TRY = "home_try_model"
    COMPARE_JOB = "compare_job"
    CANCEL_COMPARE = "cancel_compare"
    SHOW_CHART = "show_loss_chart"
    RETRY_JOB = "retry_job"
    EDIT_AND_RETRY = "edit_and_retry_job"


class Views:
    CREATE_JOB = "create_job"
    TRY_MODEL = "try_model"
