"""``edgevision gallery``: a face gallery in a SQLite file (:mod:`edgevision.recognition.gallery`):
add a person's images, search it with a face, list it, remove a person.

The gallery is ``--gallery FILE``, by default ``gallery.sqlite`` in the current folder. The
embeddings come from :func:`edgevision.recognition.recognizer.load_recognizer`; a gallery made
by another recognizer is refused. A gallery file is checked before the recognizer loads and
every change is one transaction: a failed command leaves the gallery as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

DEFAULT_GALLERY = Path("gallery.sqlite")

gallery_app = typer.Typer(
    no_args_is_help=True,
    help=f"A face gallery in a SQLite file (default: ./{DEFAULT_GALLERY}): add, search, list, remove.",
)
err_console = Console(stderr=True)

GalleryOption = Annotated[
    Path, typer.Option("--gallery", help="the gallery file (by default in the current folder)")
]
CropOption = Annotated[
    bool, typer.Option("--crop", help="the images are face crops already (e.g. ORL): no detection")
]
ModelOption = Annotated[
    str | None, typer.Option(help="registered recognizer or a plan of one (default: the one we ship)")
]
WeightsOption = Annotated[Path | None, typer.Option(help="weights file (default: the bundled ones)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object instead of a table")]


@gallery_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="the person's name")],
    images: Annotated[list[Path], typer.Argument(help="images of that person, or folders of them")],
    gallery: GalleryOption = DEFAULT_GALLERY,
    crop: CropOption = False,
    model: ModelOption = None,
    weights: WeightsOption = None,
) -> None:
    """Add a person's images to the gallery (made if it does not exist), in one transaction.

    Each image gives one embedding, of its largest face (the recognizer's choice) unless --crop.
    An image that cannot be read or shows no face is skipped with a one-line warning; the others
    are added and the command exits with 2 at the end. None added: the gallery is not touched."""
    from contextlib import ExitStack

    import numpy as np
    from rich.progress import track

    from edgevision.cli_media import InputRun
    from edgevision.data.io import check_output_file, read_image
    from edgevision.data.media import collect_media, is_video
    from edgevision.errors import InputFileError
    from edgevision.recognition.gallery import Gallery, check_name
    from edgevision.recognition.recognizer import load_recognizer

    name = check_name(name)
    media = collect_media(images)
    run = InputRun(strict=False, console=err_console)
    embeddings, sources = [], []
    with ExitStack() as stack:
        # An existing file is checked before the recognizer loads (a foreign file fails here), a
        # new one's folder too; the gallery is made only when there is something to add to it.
        store = stack.enter_context(Gallery.open(gallery)) if gallery.exists() else None
        if store is None:
            check_output_file(gallery, "--gallery")
        recognizer = load_recognizer(model, weights)
        if store is not None:
            store.check_model(recognizer.model_id, recognizer.embedding_size)
        for path in track(media, description="embedding", console=err_console, transient=True):
            with run.input(path):
                if is_video(path):
                    raise InputFileError(f"{path} is a video; gallery add takes images")
                image = read_image(path)
                embedding, _ = run.timed(lambda picture: recognizer.embed(picture, crop=crop), image)
                embeddings.append(embedding)
                sources.append(path)
        if embeddings:
            if store is None:
                store = stack.enter_context(
                    Gallery.open(gallery, recognizer.model_id, recognizer.embedding_size, create=True)
                )
            store.add(name, np.stack(embeddings), sources)
            typer.echo(
                f"{gallery}: added {len(embeddings)} image(s) of {name} ({store.counts()[name]} in all)"
            )
    run.counts = f"{len(media)} input(s), {len(embeddings)} added"
    run.finish()


@gallery_app.command("search")
def search(
    image: Annotated[Path, typer.Argument(help="an image of the face to look for")],
    top: Annotated[int, typer.Option(min=1, help="people listed, best first")] = 5,
    gallery: GalleryOption = DEFAULT_GALLERY,
    crop: CropOption = False,
    model: ModelOption = None,
    weights: WeightsOption = None,
    json_output: JsonOption = False,
) -> None:
    """The people in the gallery most like the face in IMAGE, best first.

    Each with the cosine similarity of the image's embedding to that person's closest image, that
    image, and whether they are the same person by the recognizer's verification threshold (a
    cosine distance, 1 - similarity; from its model card). An image without a face is an error."""
    from edgevision.data.io import read_image
    from edgevision.errors import EdgeVisionError, GalleryError
    from edgevision.recognition.gallery import Gallery
    from edgevision.recognition.recognizer import load_recognizer

    with Gallery.open(gallery) as store:  # a missing or foreign file fails before the model loads
        if not len(store):
            raise GalleryError(f"gallery {gallery} is empty")
        picture = read_image(image)
        recognizer = load_recognizer(model, weights)
        store.check_model(recognizer.model_id, recognizer.embedding_size)
        try:
            embedding = recognizer.embed(picture, crop=crop)
        except EdgeVisionError as error:  # e.g. no face: the message names the image
            raise type(error)(f"{image}: {error}") from None
        matches = store.search(embedding, top)
    threshold = recognizer.threshold  # None: weights without a card, no same-person verdict
    same = [None if threshold is None else 1.0 - m.similarity <= threshold for m in matches]
    if json_output:
        found = [
            {"name": m.name, "similarity": round(m.similarity, 6), "source": m.source}
            | ({} if verdict is None else {"same": verdict})
            for m, verdict in zip(matches, same)
        ]
        record = {"image": str(image), "gallery": str(gallery), "threshold": threshold, "matches": found}
        typer.echo(json.dumps(record))
        return
    from rich.table import Table

    typer.echo(f"{image} in {gallery} ({recognizer.model_id}, cosine similarity):")
    table = Table()
    verdict_column = [] if threshold is None else [f"same (distance <= {threshold:g})"]
    for column in ("rank", "name", "similarity", *verdict_column):
        table.add_column(column, justify="right" if column in ("rank", "similarity") else "left")
    table.add_column("closest image", overflow="fold")  # a path is folded, never cut short
    for rank, (match, verdict) in enumerate(zip(matches, same), 1):
        cells = [str(rank), escape(match.name), f"{match.similarity:.3f}"]
        cells += [] if verdict is None else ["yes" if verdict else "no"]
        table.add_row(*cells, escape(match.source))
    Console().print(table)


@gallery_app.command("list")
def list_people(gallery: GalleryOption = DEFAULT_GALLERY, json_output: JsonOption = False) -> None:
    """The people in the gallery with their number of images, and the model that made it."""
    from edgevision.recognition.gallery import Gallery

    with Gallery.open(gallery) as store:
        counts = store.counts()
        about = {"model": store.model_name, "embedding_size": store.embedding_size, "created": store.created}
    if json_output:
        typer.echo(json.dumps({"gallery": str(gallery), **about, "people": counts}))
        return
    from rich.table import Table

    people = f"{len(counts)} {'person' if len(counts) == 1 else 'people'}"
    typer.echo(
        f"{gallery}: {people}, {sum(counts.values())} image(s); "
        f"{about['model']} ({about['embedding_size']}-d), made {about['created']}"
    )
    table = Table()
    table.add_column("name")
    table.add_column("images", justify="right")
    for name, count in counts.items():
        table.add_row(escape(name), str(count))
    Console().print(table)


@gallery_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="the person to remove, with every image of theirs")],
    gallery: GalleryOption = DEFAULT_GALLERY,
) -> None:
    """Remove a person from the gallery (an unknown name is an error and changes nothing)."""
    from edgevision.recognition.gallery import Gallery

    with Gallery.open(gallery) as store:
        removed = store.remove(name)
    typer.echo(f"{gallery}: removed {name.strip()} ({removed} image(s))")
