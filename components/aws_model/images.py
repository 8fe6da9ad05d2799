"""Whether each ECS service can start on the first deploy: its image must exist before the
task definition that runs it.

Contract: :func:`image_problems` returns one message per container whose image ECS could
not pull, or would never re-resolve: a mutable tag reference (``repo:tag``: pushing later
changes nothing Pulumi sees, so nothing retries), or a digest reference into a repository
the program creates without a resource that pushes the image and precedes the task
definition. A digest reference built and pushed by a ``docker-build`` image of the program,
on which the task definition depends, is sound; a digest into a registry the program does
not create is taken as pinned by the caller (it cannot be checked offline).
"""

from __future__ import annotations

from components.aws_model.graph import Graph, doc
from components.mockrun import MockResource

SERVICE = "aws:ecs/service:Service"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
REPOSITORY = "aws:ecr/repository:Repository"
BUILD = "docker-build:index:Image"


def _repository(graph: Graph, image: str) -> MockResource | None:
    """The program's ECR repository that ``image`` (``<url>[:tag|@digest]``) points into."""
    url = image.split("@")[0]
    head, _, last = url.rpartition("/")
    url = f"{head}/{last.split(':')[0]}" if head else last.split(":")[0]
    for repo in graph.of_type(REPOSITORY):
        if repo.outputs.get("repositoryUrl") == url:
            return repo
    return None


def _builder(graph: Graph, image: str) -> MockResource | None:
    """The program's image build that pushed ``image`` (same repository, same digest)."""
    url, _, digest = image.partition("@")
    for build in graph.of_type(BUILD):
        pushed = {t.rsplit(":", 1)[0] for t in build.inputs.get("tags") or []}
        if build.inputs.get("push") and url in pushed and build.outputs.get("digest") == digest:
            return build
    return None


def _container_problem(graph: Graph, service: MockResource, task: MockResource, image: str) -> str | None:
    repo = _repository(graph, image)
    if "@sha256:" not in image:
        return (
            f"{service.name} runs {image}, a tag: pushing it later changes nothing the program sees, "
            "so the first deploy never converges; pin the image by digest or build it in the program"
        )
    if repo is None:
        return None  # pinned by the caller into a registry this program does not manage
    build = _builder(graph, image)
    if build is None:
        return f"{service.name} runs an image of {repo.name} that nothing in the program pushes"
    if build.urn not in {u for deps in task.property_dependencies.values() for u in deps}:
        return f"{task.name} does not wait for {build.name}: ECS could start before the push"
    return None


def image_problems(graph: Graph) -> list[str]:
    """Problems of every ECS service's containers (empty when every image will exist)."""
    found = []
    for service in graph.of_type(SERVICE):
        task = graph.ref(service.inputs.get("taskDefinition"))
        if task is None:
            found.append(f"{service.name}: task definition not found in the program")
            continue
        for container in doc(task.inputs["containerDefinitions"]):
            problem = _container_problem(graph, service, task, container["image"])
            if problem:
                found.append(problem)
    return found


def facts(graph: Graph) -> list[str]:
    """One line per service container: which image it runs and where it comes from."""
    lines = []
    for service in graph.of_type(SERVICE):
        task = graph.ref(service.inputs.get("taskDefinition"))
        for container in doc(task.inputs["containerDefinitions"]) if task else []:
            image = container["image"]
            build = _builder(graph, image)
            origin = f"built and pushed by {build.name} before {task.name}" if build else "pinned by the caller"
            lines.append(f"image {service.name}/{container['name']}: {image.split('/')[-1][:40]}… {origin}")
    return lines + [f"image problem: {p}" for p in image_problems(graph)]
