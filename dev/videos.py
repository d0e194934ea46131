"""Real video files for demos and tests: each camera films the same moving scene.

A red ball circles over a checkerboard; every camera sees it from a slightly different
position and starts a little later than the one before, as real phones do. The clips are
H.264 in a QuickTime `.mov`, like an iPhone's.
"""

import subprocess
from pathlib import Path

SCENE = (
    "color=c=0xdddddd:s={w}x{h}:r={fps}:d={seconds}[bg];"
    "color=c=0x303030:s={w}x{h}:r={fps}:d={seconds},"
    "geq=lum='if(mod(floor(X/40)+floor(Y/40),2),40,200)':cb=128:cr=128[board];"
    "[bg][board]blend=all_mode=average[floor];"
    "color=c=red:s=48x48:r={fps}:d={seconds},format=yuva420p,"
    "geq=lum='p(X,Y)':cb='p(X,Y)':cr='p(X,Y)':a='if(lt(hypot(X-24,Y-24),24),255,0)'[ball];"
    "[floor][ball]overlay=x='W/2-24+{dx}+{r}*cos(2*PI*(t+{lag})/{period})':"
    "y='H/2-24+{r}*sin(2*PI*(t+{lag})/{period})':shortest=1"
)


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
    graph = SCENE.format(
        w=w,
        h=h,
        fps=fps,
        seconds=seconds,
        dx=(camera - 1) * 60,
        r=min(w, h) // 3,
        lag=camera * 0.05,
        period=2,
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
    paths = [folder / f"camera{i}-{seconds:g}s.mov" for i in range(cameras)]
    for i, path in enumerate(paths):
        if not path.exists():
            make_clip(path.with_suffix(".part.mov"), camera=i, seconds=seconds, **options)
            path.with_suffix(".part.mov").rename(path)
    return paths
