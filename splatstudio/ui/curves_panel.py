"""Training curves: loss, PSNR (with held-out eval points), Gaussian count and seconds per iteration
against the iteration, for the shown project: its run's points as they come, on top of the points its
training saved (``logs/train-curves.jsonl``), which are all a finished project shows. Events are buffered
and the plots repaint at most 10 times a second."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

from splatstudio.pipeline.events import Eval, Progress
from splatstudio.pipeline.train import Series, add_point
from splatstudio.services.runs import ProjectRun
from splatstudio.ui.workers import SignalLinks

SERIES = (("loss", "Loss"), ("psnr", "PSNR (dB)"), ("num_gaussians", "Gaussians"), ("sec_per_iter", "s / iteration"))
KEYS = (*(key for key, _ in SERIES), "eval_psnr")
REPAINT_MS = 100


class CurvesPanel(QWidget):
    """Four live plots fed by the followed run's train progress figures, metrics and evals."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._links = SignalLinks()
        self.folder: str | None = None
        """The project whose curves are shown."""
        self.data: Series = {key: ([], []) for key in KEYS}
        self._dirty = False
        self.graphics = pg.GraphicsLayoutWidget()
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.plots: list[pg.PlotItem] = []
        self._columns = 0
        for key, title in SERIES:
            plot = pg.PlotItem(title=f"{title} (by iteration)" if not self.plots else title)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
            plot.showGrid(x=True, y=True, alpha=0.2)
            self.plots.append(plot)
            self.curves[key] = plot.plot(pen=pg.mkPen("#3d8fd6", width=1.5))
            if key == "psnr":
                self.eval_points = plot.plot(pen=None, symbol="o", symbolSize=7, symbolBrush="#d89a2b",
                                             name="held-out")
        self._arrange(2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self._timer = QTimer(self)
        self._timer.setInterval(REPAINT_MS)
        self._timer.timeout.connect(self._on_repaint_due)
        self._timer.start()

    def _arrange(self, columns: int) -> None:
        """The plots in a grid of ``columns``: a row of four in the wide, low dock at the bottom of the window
        (in two rows each plot was a strip a few pixels tall), two by two where the panel is squarer."""
        if columns == self._columns:
            return
        self._columns = columns
        for plot in self.plots:
            if plot.scene() is not None:
                self.graphics.removeItem(plot)
        for index, plot in enumerate(self.plots):
            self.graphics.addItem(plot, row=index // columns, col=index % columns)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._arrange(len(self.plots) if self.width() > 2.5 * self.height() else 2)

    @property
    def evals(self) -> tuple[list[float], list[float]]:
        return self.data["eval_psnr"]

    def follow(self, run: ProjectRun | None) -> None:
        """Plot ``run``'s training as it comes (None: stop following), over the saved points that
        :meth:`show_saved` adds."""
        self._links.clear()
        if run is None:
            return
        self.clear()
        self.folder = str(run.project.folder)
        self._links.connect(run.sig_progress, self._on_progress)
        self._links.connect(run.sig_event, self._on_event)

    def show_saved(self, folder: str, saved: Series) -> None:
        """The points the project's training saved (``load_curves``). While its run is followed, the points
        that came live win from the first iteration they cover (the file may have them too)."""
        if folder != self.folder:
            self._links.clear()
            self.folder = folder
            self.clear()
        for key in KEYS:
            xs, ys = self.data[key]
            old_xs, old_ys = saved.get(key, ([], []))
            keep = sum(1 for x in old_xs if not xs or x < xs[0])
            self.data[key] = (old_xs[:keep] + xs, old_ys[:keep] + ys)
        self._dirty = True

    def clear(self) -> None:
        self.data = {key: ([], []) for key in KEYS}
        self._dirty = True

    def add_figures(self, iteration: float, figures: dict[str, float]) -> None:
        point = {key: figures.get(key) for key, _title in SERIES}
        self._dirty |= add_point(self.data, {"iteration": iteration, **point})

    def add_eval(self, iteration: float, psnr: float) -> None:
        self._dirty |= add_point(self.data, {"iteration": iteration, "eval_psnr": psnr})

    def _on_progress(self, stage: str, event: Progress) -> None:
        iteration = event.figures.get("iteration")
        if stage == "train" and isinstance(iteration, (int, float)):
            self.add_figures(iteration, event.figures)

    def _on_event(self, stage: str, event: object) -> None:
        if isinstance(event, Eval) and event.psnr is not None:
            self.add_eval(event.iteration, event.psnr)

    def _on_repaint_due(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for key, curve in self.curves.items():
            xs, ys = self.data[key]
            curve.setData(xs, ys)
        self.eval_points.setData(*self.evals)
