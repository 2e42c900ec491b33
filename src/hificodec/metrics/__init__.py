"""Image quality metrics (PSNR, MS-SSIM, LPIPS, FID/KID) and the offline provisioning of their weights."""
