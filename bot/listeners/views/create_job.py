from typing import Any

from bot.core import Bot, FormSubmission


async def create_job_submitted(
    ack: Any, body: dict[str, Any], view: dict[str, Any], context: dict[str, Any]
) -> None:
    bot: Bot = context["bot"]
    # The core answers at once (no I/O): field errors must travel in the acknowledgement.
    errors = await bot.form_submitted(
        FormSubmission(
            callback_id=view.get("callback_id", ""),
            private_metadata=view.get("private_metadata", ""),
            values=(view.get("state") or {}).get("values") or {},
            user=body["user"]["id"],
            trigger_id=body.get("trigger_id"),
            view_id=view.get("id"),
        )
    )
    if errors:
        await ack(response_action="errors", errors=errors)
    else:
        await ack()
