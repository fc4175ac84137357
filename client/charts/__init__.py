"""Loss charts of fine-tuning jobs: the curve read from events and checkpoints (`curve`),
a PNG drawn with matplotlib (`draw`, imported only when drawn), a text sparkline
(`sparkline`). Knows nothing of Slack."""

from client.charts.curve import (
    BestCheckpoint,
    EpochPoint,
    LossCurve,
    StepPoint,
    best_checkpoint,
    loss_curve,
    message_figures,
)
from client.charts.draw import HEIGHT_PX, WIDTH_PX, Chart, ChartError, draw_loss_chart
from client.charts.sparkline import SPARKLINE_WIDTH, loss_sparkline, sparkline

__all__ = [
    "HEIGHT_PX",
    "SPARKLINE_WIDTH",
    "WIDTH_PX",
    "BestCheckpoint",
    "Chart",
    "ChartError",
    "EpochPoint",
    "LossCurve",
    "StepPoint",
    "best_checkpoint",
    "draw_loss_chart",
    "loss_curve",
    "loss_sparkline",
    "message_figures",
    "sparkline",
]
