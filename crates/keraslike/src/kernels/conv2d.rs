//! Conv2D's forward on any backend: the one place that picks a convolution. Flex runs
//! the project's kernels ([`crate::kernels::flex`]); ndarray runs im2col and one matrix
//! product written in burn tensor ops ([`im2col_conv2d`]); wgpu keeps burn's.
//!
//! burn-ndarray convolves with a direct loop and no GEMM (~13 images/s for a training
//! step of the course CNN here). The course's formulation is built from operations that
//! ndarray does well: the kh·kw shifted copies of the padded input are stacked into
//! columns (B, C·kh·kw, H·W) and multiplied by the weights (O, C·kh·kw); autodiff then
//! differentiates slices, a stack and a matmul, so every gradient is a GEMM or a copy
//! (~240-300 images/s, `examples/backend_step.rs`). On flex the same formulation measured
//! no faster than flex's own convolution, so flex runs the project's kernels instead
//! (`crate::kernels::flex`, on plain slices); wgpu keeps burn's. The weights are burn's
//! `Conv2d`'s own, so models and files are the same whichever path ran.

use burn::nn::conv::Conv2d;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Slice, Tensor};

use super::conv::padding;

/// `conv.forward(x)`: keraslike's own kernels on flex ([`crate::kernels::flex`]), im2col in
/// tensor ops ([`im2col_conv2d`]) on ndarray, burn's convolution elsewhere.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if let Some(y) = crate::kernels::flex::conv2d(conv, &x) {
        return y;
    }
    #[allow(deprecated)] // burn-ndarray is deprecated upstream; the project keeps it.
    let ndarray = Device::ndarray();
    if x.device().without_autodiff() == ndarray {
        im2col_conv2d(conv, x)
    } else {
        conv.forward(x)
    }
}

/// `conv.forward(x)` as im2col + matmul (burn's convolution where dilation or groups
/// are used).
pub fn im2col_conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if conv.dilation != [1, 1] || conv.groups != 1 {
        return conv.forward(x);
    }
    let [batch, channels, height, width] = x.dims();
    let ([kh, kw], [sh, sw]) = (conv.kernel_size, conv.stride);
    let ((top, bottom), (left, right)) = padding(conv, height, width);
    let x = if top + bottom + left + right > 0 {
        x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0))
    } else {
        x
    };
    let out_h = (height + top + bottom - kh) / sh + 1;
    let out_w = (width + left + right - kw) / sw + 1;
    // Indices start, start + step, ..., `out` of them.
    let every = |start: usize, step: usize, out: usize| {
        let end = start + step * (out - 1) + 1;
        Slice::new(start as isize, Some(end as isize), step as isize)
    };
    // Column c·kh·kw + i·kw + j holds input channel c shifted by (i, j): the order of
    // the weight tensor's (C, kh, kw) dimensions flattened.
    let shifted: Vec<Tensor<4>> = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| (i, j)))
        .map(|(i, j)| {
            x.clone().slice([
                Slice::from(0..batch),
                Slice::from(0..channels),
                every(i, sh, out_h),
                every(j, sw, out_w),
            ])
        })
        .collect();
    let columns =
        Tensor::<4>::stack::<5>(shifted, 2).reshape([batch, channels * kh * kw, out_h * out_w]);
    let [filters, ..] = conv.weight.dims();
    let weights = conv.weight.val().reshape([1, filters, channels * kh * kw]);
    let mut y = weights.matmul(columns);
    if let Some(bias) = &conv.bias {
        y = y + bias.val().reshape([1, filters, 1]);
    }
    y.reshape([batch, filters, out_h, out_w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::max_difference;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    #[test]
    fn tensor_op_im2col_matches_burns_convolution_and_its_gradients() {
        matches_burns_convolution(im2col_conv2d);
    }

    #[test]
    fn flex_kernels_match_burns_convolution_and_its_gradients() {
        matches_burns_convolution(|conv, x| {
            crate::kernels::flex::conv2d(conv, &x).expect("an f32 flex tensor takes the kernels")
        });
    }

    #[test]
    fn flex_kernels_run_without_autodiff() {
        let device = Device::flex();
        device.seed(4);
        let conv = Conv2dConfig::new([3, 5], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(&device);
        let x = Tensor::<4>::random([2, 3, 6, 5], Distribution::Default, &device);
        let ours = crate::kernels::flex::conv2d(&conv, &x).expect("flex f32");
        assert!(max_difference(ours, conv.forward(x)) < 1e-5);
    }

    /// `ours` against burn's `Conv2d::forward` in value and in every gradient, over
    /// paddings, kernels and strides.
    fn matches_burns_convolution(ours_of: impl Fn(&Conv2d, Tensor<4>) -> Tensor<4>) {
        let device = Device::flex().autodiff();
        device.seed(3);
        for (padding, kernel, stride, channels) in [
            (PaddingConfig2d::Same, 3, 1, [2, 4]),
            (PaddingConfig2d::Valid, 3, 1, [3, 5]),
            (PaddingConfig2d::Same, 5, 1, [1, 2]),
            (PaddingConfig2d::Valid, 1, 1, [4, 3]),
            (PaddingConfig2d::Same, 4, 2, [2, 3]), // the DCGAN discriminator's
            (PaddingConfig2d::Valid, 3, 2, [2, 3]),
            (PaddingConfig2d::Explicit(1, 0, 2, 1), 3, 1, [1, 2]),
        ] {
            let conv = Conv2dConfig::new(channels, [kernel, kernel])
                .with_padding(padding.clone())
                .with_stride([stride, stride])
                .init(&device);
            let x = Tensor::<4>::random([2, channels[0], 7, 6], Distribution::Default, &device)
                .require_grad();
            let (ours, burns) = (ours_of(&conv, x.clone()), conv.forward(x.clone()));
            assert_eq!(ours.dims(), burns.dims(), "{padding:?} {kernel} {stride}");
            assert!(max_difference(ours.clone(), burns.clone()) < 1e-5);
            // The same weighted sum through each: every gradient must agree.
            let r = Tensor::<4>::random(ours.dims(), Distribution::Default, &device);
            let g_ours = (ours * r.clone()).sum().backward();
            let g_burn = (burns * r).sum().backward();
            let grad = |g: &burn::tensor::Gradients| {
                (
                    x.grad(g).expect("x grad"),
                    conv.weight.val().grad(g).expect("weight grad"),
                    conv.bias
                        .as_ref()
                        .expect("bias")
                        .val()
                        .grad(g)
                        .expect("bias grad"),
                )
            };
            let ((dx1, dw1, db1), (dx2, dw2, db2)) = (grad(&g_ours), grad(&g_burn));
            assert!(max_difference(dx1, dx2) < 1e-4, "dx, kernel {kernel}");
            assert!(max_difference(dw1, dw2) < 1e-4, "dw, kernel {kernel}");
            assert!(
                (db1 - db2).abs().max().into_scalar::<f32>() < 1e-4,
                "db, kernel {kernel}"
            );
        }
    }
}
