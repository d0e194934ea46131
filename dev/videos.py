"""Real video files for demos and tests: each camera films the same moving scene.

A red ball travels round a circle over a checkerboard, speeding up and slowing down
(its angle is a steady turn plus two wobbles of unrelated periods, so the speed never
repeats within a clip). Every camera sees it from a slightly different position and
starts `camera * 0.05` s later than Cam0, as real phones do: what camera N shows at time
t, Cam0 shows at t + N * 0.05 s. The varying speed is what lets a pipeline recover those
lags from the pictures alone. The clips are H.264 in a QuickTime `.mov`, like an iPhone's.
"""

import subprocess
from pathlib import Path

# The ball's angle at scene time T (seconds): one turn per 2 s plus two wobbles whose
# amplitudes keep it from ever turning back; its speed varies from ~0.1x to ~2x.
ANGLE = "(2*PI*({T})/2+0.25*sin(2*PI*({T})/0.9)+0.07*sin(2*PI*({T})/0.37))"
SCENE = (
    "color=c=0xdddddd:s={w}x{h}:r={fps}:d={seconds}[bg];"
    "color=c=0x303030:s={w}x{h}:r={fps}:d={seconds},"
    "geq=lum='if(mod(floor(X/40)+floor(Y/40),2),40,200)':cb=128:cr=128[board];"
    "[bg][board]blend=all_mode=average[floor];"
    "color=c=red:s=48x48:r={fps}:d={seconds},format=yuva420p,"
    "geq=lum='p(X,Y)':cb='p(X,Y)':cr='p(X,Y)':a='if(lt(hypot(X-24,Y-24),24),255,0)'[ball];"
    "[floor][ball]overlay=x='W/2-24+{dx}+{r}*cos({angle})':"
    "y='H/2-24+{r}*sin({angle})':shortest=1"
)
LAG_SECONDS = 0.05  # camera N starts N times this later than Cam0
# Part of the cached clips' names: bump it when the scene changes.
SCENE_VERSION = 2


def make_clip(
    path: Path,
    *,
    camera: int = 0,
    seconds: float = 3.0,
    fps: int = 60,
    size: tuple[int, int] = (640, 360),
) -> Path:
    """Write one camera's clip to `path` with ffmpeg and return the path."""
    w, h = size
    r = min(w, h) // 3
    # Each camera sees the circle shifted sideways, the whole ball always in the picture.
    step = max(0, (w // 2 - r - 24) // 2)
    graph = SCENE.format(
        w=w,
        h=h,
        fps=fps,
        seconds=seconds,
        dx=(camera % 4 - 1) * step,
        r=r,
        angle=ANGLE.format(T=f"t+{camera * LAG_SECONDS:g}"),
    )
    command = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-filter_complex",
        graph,
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        str(path),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return path


def make_clips(folder: Path, cameras: int, seconds: float = 3.0, **options) -> list[Path]:
    """One clip per camera in `folder`; clips made earlier with the same length are reused."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"camera{i}-{seconds:g}s-v{SCENE_VERSION}.mov" for i in range(cameras)]
    for i, path in enumerate(paths):
        if not path.exists():
            make_clip(path.with_suffix(".part.mov"), camera=i, seconds=seconds, **options)
            path.with_suffix(".part.mov").rename(path)
    return paths
