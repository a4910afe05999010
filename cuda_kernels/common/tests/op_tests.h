// The checks of each op, defined in its folder (ops/<op>/tests/), which the two test programs here
// run in a fixed order from one seed. A new op adds its checks here and to both mains.
#pragma once

#include <random>

namespace maed_test {

// test_reference (ctest reference_vs_direct): the host reference against a direct evaluation.
void ds_block_reference_cases(std::mt19937& rng);
void ds_block_reference_refusals(std::mt19937& rng);
void se_fusion_reference_cases(std::mt19937& rng);
void se_fusion_reference_refusals(std::mt19937& rng);

// test_cuda_kernels (ctest cuda_vs_reference): the kernels against the host reference, on a GPU.
void ds_block_cuda_cases(std::mt19937& rng);
void se_fusion_cuda_cases(std::mt19937& rng);

}  // namespace maed_test
