from train_fusion.cli import main

main()
