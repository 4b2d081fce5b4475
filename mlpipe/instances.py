"""What the EC2 GPU instance types that mlpipe knows provide: GPUs, vCPUs and memory. (p3 is listed so that
config can say why it refuses it: see FAMILIES_WITHOUT_GPU_IMAGE.)

Config validation (a GPU count that an instance type cannot give fails synth) and the client's
pre-submission checks read this table, so it lives in the package rather than in the stacks.
Figures are from the EC2 accelerated-computing instance specifications.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInstance:
    """One EC2 GPU instance type."""

    name: str
    gpus: int
    vcpus: int
    memory_mib: int
    gpu_model: str
    efa: bool = False


_CATALOG = (
    # NVIDIA A10G
    GpuInstance("g5.xlarge", 1, 4, 16_384, "A10G"),
    GpuInstance("g5.2xlarge", 1, 8, 32_768, "A10G"),
    GpuInstance("g5.4xlarge", 1, 16, 65_536, "A10G"),
    GpuInstance("g5.8xlarge", 1, 32, 131_072, "A10G", efa=True),
    GpuInstance("g5.12xlarge", 4, 48, 196_608, "A10G", efa=True),
    GpuInstance("g5.16xlarge", 1, 64, 262_144, "A10G", efa=True),
    GpuInstance("g5.24xlarge", 4, 96, 393_216, "A10G", efa=True),
    GpuInstance("g5.48xlarge", 8, 192, 786_432, "A10G", efa=True),
    # NVIDIA L4
    GpuInstance("g6.xlarge", 1, 4, 16_384, "L4"),
    GpuInstance("g6.2xlarge", 1, 8, 32_768, "L4"),
    GpuInstance("g6.4xlarge", 1, 16, 65_536, "L4"),
    GpuInstance("g6.8xlarge", 1, 32, 131_072, "L4", efa=True),
    GpuInstance("g6.12xlarge", 4, 48, 196_608, "L4", efa=True),
    GpuInstance("g6.16xlarge", 1, 64, 262_144, "L4", efa=True),
    GpuInstance("g6.24xlarge", 4, 96, 393_216, "L4", efa=True),
    GpuInstance("g6.48xlarge", 8, 192, 786_432, "L4", efa=True),
    # NVIDIA L40S
    GpuInstance("g6e.xlarge", 1, 4, 32_768, "L40S"),
    GpuInstance("g6e.2xlarge", 1, 8, 65_536, "L40S"),
    GpuInstance("g6e.12xlarge", 4, 48, 393_216, "L40S", efa=True),
    GpuInstance("g6e.48xlarge", 8, 192, 1_572_864, "L40S", efa=True),
    # NVIDIA T4
    GpuInstance("g4dn.xlarge", 1, 4, 16_384, "T4"),
    GpuInstance("g4dn.2xlarge", 1, 8, 32_768, "T4"),
    GpuInstance("g4dn.12xlarge", 4, 48, 196_608, "T4", efa=True),
    # NVIDIA V100, A100, H100, H200
    GpuInstance("p3.2xlarge", 1, 8, 62_464, "V100"),
    GpuInstance("p3.8xlarge", 4, 32, 249_856, "V100"),
    GpuInstance("p3.16xlarge", 8, 64, 499_712, "V100"),
    GpuInstance("p4d.24xlarge", 8, 96, 1_179_648, "A100", efa=True),
    GpuInstance("p5.48xlarge", 8, 192, 2_097_152, "H100", efa=True),
    GpuInstance("p5e.48xlarge", 8, 192, 2_097_152, "H200", efa=True),
)

GPU_INSTANCES: dict[str, GpuInstance] = {i.name: i for i in _CATALOG}

# The AMI of mlpipe's Batch GPU compute environments, and the families it cannot run. AWS Batch's
# Ec2Configuration reference: "ECS_AL2023_NVIDIA doesn't support p3 and g3 instance types" (p3dn and g3s
# are sizes of those families with their V100 and M60 GPUs).
BATCH_GPU_IMAGE_TYPE = "ECS_AL2023_NVIDIA"
FAMILIES_WITHOUT_GPU_IMAGE = ("p3", "p3dn", "g3", "g3s")


def instance_family(name: str) -> str:
    """`p3` for `p3.2xlarge`."""
    return name.partition(".")[0]


def gpu_instance(name: str) -> GpuInstance:
    """The catalog entry for `name`; KeyError names the known types when it is not a GPU type."""
    try:
        return GPU_INSTANCES[name]
    except KeyError:
        raise KeyError(
            f"{name!r} is not a known GPU instance type (known: {', '.join(GPU_INSTANCES)})"
        ) from None
