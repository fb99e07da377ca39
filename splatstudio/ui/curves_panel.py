"""Training curves: loss, PSNR (with held-out eval points), Gaussian count and seconds per iteration
against the iteration. Events are buffered and the plots repaint at most 10 times a second."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

from splatstudio.pipeline.events import Eval, Metric, Progress
from splatstudio.services.runs import ProjectRun
from splatstudio.ui.workers import SignalLinks

SERIES = (("loss", "Loss"), ("psnr", "PSNR (dB)"), ("num_gaussians", "Gaussians"), ("sec_per_iter", "s / iteration"))
REPAINT_MS = 100


class CurvesPanel(QWidget):
    """Four live plots fed by the followed run's train progress figures, metrics and evals."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._links = SignalLinks()
        self.data: dict[str, tuple[list[float], list[float]]] = {key: ([], []) for key, _ in SERIES}
        self.evals: tuple[list[float], list[float]] = ([], [])
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

    def follow(self, run: ProjectRun | None) -> None:
        """Plot ``run``'s training from now on (None: stop following); a new run starts empty plots."""
        self._links.clear()
        if run is None:
            return
        self.clear()
        self._links.connect(run.sig_progress, self._on_progress)
        self._links.connect(run.sig_event, self._on_event)

    def clear(self) -> None:
        for xs, ys in self.data.values():
            xs.clear()
            ys.clear()
        self.evals[0].clear()
        self.evals[1].clear()
        self._dirty = True

    def add_figures(self, iteration: float, figures: dict[str, float]) -> None:
        for key, _title in SERIES:
            value = figures.get(key)
            if isinstance(value, (int, float)):
                xs, ys = self.data[key]
                xs.append(float(iteration))
                ys.append(float(value))
                self._dirty = True

    def add_eval(self, iteration: float, psnr: float) -> None:
        self.evals[0].append(float(iteration))
        self.evals[1].append(float(psnr))
        self._dirty = True

    def _on_progress(self, stage: str, event: Progress) -> None:
        iteration = event.figures.get("iteration")
        if stage == "train" and isinstance(iteration, (int, float)):
            self.add_figures(iteration, event.figures)

    def _on_event(self, stage: str, event: object) -> None:
        if isinstance(event, Metric):
            self.add_figures(event.iteration, event.values)
        elif isinstance(event, Eval) and event.psnr is not None:
            self.add_eval(event.iteration, event.psnr)

    def _on_repaint_due(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for key, curve in self.curves.items():
            xs, ys = self.data[key]
            curve.setData(xs, ys)
        self.eval_points.setData(*self.evals)
